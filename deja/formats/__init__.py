"""Text notations for JSON values (Tauq: `deja.formats.tauq`)."""
