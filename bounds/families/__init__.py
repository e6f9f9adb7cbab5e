"""One module per algorithm family; each factory encodes one theorem and registers it."""
