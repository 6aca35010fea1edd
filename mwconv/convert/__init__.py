"""Import (source tensors -> Keras model) and, later, export."""
