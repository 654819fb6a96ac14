"""Activities: the code that talks to the outside world. One module per stage."""
