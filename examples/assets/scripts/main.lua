print("hello from assetsync")
