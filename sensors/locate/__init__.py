"""Head localisation: where the head centre is, from depth, colour or stored annotations.
"""
