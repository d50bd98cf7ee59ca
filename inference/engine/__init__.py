"""The agentsite engine: no Django import anywhere in this package."""
