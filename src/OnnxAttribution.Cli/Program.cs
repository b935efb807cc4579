using OnnxAttribution.Cli;

// Parse, map onto the library's option records, run: the work lives in the libraries.
return CliApp.Run(args);
