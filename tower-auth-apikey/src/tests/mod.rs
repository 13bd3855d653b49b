//! Tests of the scheme through the layer.
