"""Numbers fsacd may present as caller ID, and their verification."""
