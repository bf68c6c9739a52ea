"""Several helpers on one node, one view of the cluster.

- The helper holding the group's lock leads: it alone talks to the API (lookups,
  lists, watches), publishes what it knows to the group's shared file while
  followers exist, and answers their questions on its socket.
- The others follow: they map the shared file (a sharedview) whenever it
  changes and splice their replies from it, holding no metadata of their own;
  they ask the leader for a pod it does not have yet. They never import the
  API client. Those questions go through a store like a leader's, so a line
  waits for the leader no longer than for the API: at most the per-line deadline.
- A follower waits on the lock in a thread of its own. When the leader dies
  the kernel releases it, and the follower takes the lead without stopping: it
  serves from the last view while it seeds its store from it and builds its
  API client.

The view a leader publishes and followers read in place is sharedview; the
lock and socket are transport; the messages are in wire.sharedproto.
"""
