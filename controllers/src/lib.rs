//! Reconcilers (placeholder until the controllers issue).
