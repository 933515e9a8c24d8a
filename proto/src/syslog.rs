//! syslog (being written).
