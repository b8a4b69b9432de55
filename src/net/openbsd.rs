//! OpenBSD backend: ioctl and routing socket.
