"""covidct: weekly retraining of COVID-19 CT-slice classifiers."""

__version__ = "0.1.0"
