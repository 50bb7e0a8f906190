"""The simulated exchange's pure core: accounts, orders, positions, TP/SL, seeded order flow.

simex serves it over REST/WS; the trainer's synthetic captures use the market generator.
"""
