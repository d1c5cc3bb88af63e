"""The number task kind's home: its TaskKind (kind.py) and the code only it uses."""
