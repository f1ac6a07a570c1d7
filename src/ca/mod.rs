//! Swarm CA (being written).
