using OpenPurse.Wallet.Cli;

return await WalletCli.RunAsync(args, WalletCliContext.FromProcess()).ConfigureAwait(false);
