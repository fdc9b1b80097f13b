"""mlsd."""
