"""Market data: the tick/bar model, sources (Binance, Alpha Vantage, Yahoo) and the replay exchange."""
