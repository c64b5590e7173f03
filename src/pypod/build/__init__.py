"""Building images: the Containerfile parser and Docker's word expansion (`expand`)."""
