"""Several helpers on one node, one view: the view a leader publishes and
followers read in place (sharedview), and the I/O of leading and following
(sharing). The messages themselves are in wire.sharedproto."""
