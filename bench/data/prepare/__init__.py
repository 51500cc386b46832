"""`bench prepare`: build dataset roots from the official archives (issue 15)."""
