"""Staff accounts and sign-in for the staff console (issue 10)."""
