"""Customer groups for the quality tests: (customers, items, log revenue) per group."""

# Four groups, two pairs: a depth-2 tree gives each its own leaf.
FOUR_GROUPS = [(60, 10, 1.0), (40, 20, 1.5), (80, 1000, 5.0), (120, 2000, 5.5)]

# Four groups with noise on revenue and ticket: a depth-3 tree splits them and some noise.
NOISY_GROUPS = [(70, 10, 1.0), (50, 20, 2.0), (90, 400, 4.0), (60, 900, 6.0)]

# Three revenue tiers; a depth-2 tree parts the top tier from the others at its root, then the
# low tier from the middle one, and cuts the top tier (100 customers) in two along its noise.
THREE_TIERS = [(60, 10, 1.0), (100, 1000, 5.0), (100, 5000, 9.0)]
