"""FAQ matching: a new question is ranked against known original questions (scikit-learn, served in real time)."""
