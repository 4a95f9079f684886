"""Neuron interpretation: SAE codes through the exported encoder, alignment with metadata concepts,
honest labels and steer slugs, the Matryoshka concept tree, and the HTML report."""
