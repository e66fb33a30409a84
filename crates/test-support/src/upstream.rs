//! Echo upstream (written next).
