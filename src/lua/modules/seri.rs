//! skynet.pack / skynet.unpack (lua-seri wire format).
