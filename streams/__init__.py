"""Stream processing: pure domain logic plus the faust agents that wire topics to it."""
