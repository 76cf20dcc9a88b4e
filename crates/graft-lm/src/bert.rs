//! BERT encoder (in progress).
