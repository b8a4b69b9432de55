//! Linux backend over rtnetlink.
