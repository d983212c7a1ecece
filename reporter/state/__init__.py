"""What reporter remembers: the history of runs, slots and deliveries."""
