"""twinbill twin service: device registry, digital twins and their time series."""
