from zetcd.entry import main

main()
