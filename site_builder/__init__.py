"""Report site builder: warehouse -> page data -> MkDocs-Material pages -> site + PDFs."""
