import DropsCLI

CommandMain.run(DropsRun.self)
