/** The assetsync release this is (package.json's version): for --version, /metrics and status. */
export const VERSION = '0.1.0'
