from zetcd.cli import main

main()
