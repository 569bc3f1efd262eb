from cds.cli import app

app()
