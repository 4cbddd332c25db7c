//! Widgets of our own: the half-block spectrogram and the match timeline.

pub mod spectrogram;
pub mod timeline;
