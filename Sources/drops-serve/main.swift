import DropsCLI

CommandMain.run(DropsServe.self)
