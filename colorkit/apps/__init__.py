"""What people use to colorize their photos: whole folders with resume, and the web page."""
