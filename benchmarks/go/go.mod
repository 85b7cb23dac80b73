module curcorbench

go 1.19
