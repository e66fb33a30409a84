//! The real test IdP launcher (written next).
