"""Pure decision logic: no I/O, no clock (time is an argument), no Textual."""
