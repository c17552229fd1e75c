//! skynet.netpack: 2-byte big-endian framing.
