//! The socket server: one thread doing all network I/O for every service.
