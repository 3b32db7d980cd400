"""Two-alternative forced-choice user studies: make a static page, analyse the exported choices."""
