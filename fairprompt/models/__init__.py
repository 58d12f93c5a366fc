"""Models that produce the predictions an audit examines; no fairness logic lives here."""
