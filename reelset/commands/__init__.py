"""Click command groups, one module per stage; ``reelset.cli`` assembles them."""
