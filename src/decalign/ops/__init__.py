"""Pure maths of DecAlign: each function states its equation and has a closed-form test."""
