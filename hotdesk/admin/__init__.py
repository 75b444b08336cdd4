"""What admins manage: users and phones, imports, admin accounts, read-only reports."""
