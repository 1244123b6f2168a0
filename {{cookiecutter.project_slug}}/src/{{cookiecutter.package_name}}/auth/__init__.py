"""Authentication (`tokens`, `bearer`) and permissions (`permissions.can`)."""
