//! Privilege separation: fork, privilege drop, framed messages.
